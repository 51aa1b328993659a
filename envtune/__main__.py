import sys

from envtune.cli import main

sys.exit(main())
