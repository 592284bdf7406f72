import sys

from fedxnor.cli import main

sys.exit(main())
