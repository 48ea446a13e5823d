from __future__ import annotations

import sys

from samplescout.cli import main

sys.exit(main())
