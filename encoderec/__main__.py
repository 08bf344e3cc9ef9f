import sys

from encoderec.cli import main

sys.exit(main())
