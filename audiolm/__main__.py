import sys

from audiolm.cli.app import main

sys.exit(main())
