import sys

from optirec.service.cli import main

sys.exit(main())
