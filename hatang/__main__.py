import sys

from hatang.cli import main

sys.exit(main())
