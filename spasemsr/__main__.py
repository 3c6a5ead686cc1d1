import sys

from spasemsr.cli import main

sys.exit(main())
