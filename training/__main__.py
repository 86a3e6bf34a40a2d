"""``python -m training``: see ``training.runner``."""

from training.runner import main

raise SystemExit(main())
