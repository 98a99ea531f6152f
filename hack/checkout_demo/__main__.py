import sys

from checkout_demo.cli import main

sys.exit(main())
