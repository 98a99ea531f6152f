from checkout_stack.cli import main

raise SystemExit(main())
