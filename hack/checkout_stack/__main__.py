import signal
import sys

# Ctrl-C must stop what was started even when the parent shell ignores SIGINT (background jobs)
signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    from checkout_stack.cli import main

    sys.exit(main())
except KeyboardInterrupt:
    print("stack: interrupted", file=sys.stderr)
    sys.exit(130)
