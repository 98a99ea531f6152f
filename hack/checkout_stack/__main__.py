import sys

try:
    from checkout_stack.cli import main

    sys.exit(main())
except KeyboardInterrupt:
    print("stack: interrupted", file=sys.stderr)
    sys.exit(130)
