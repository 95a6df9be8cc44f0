import sys

from hambench.cli.main import main

sys.exit(main())
