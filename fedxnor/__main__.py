import sys

from fedxnor.app.cli import main

sys.exit(main())
