"""`python -m webhook` is `pf-webhook`."""

from webhook.cli import main

raise SystemExit(main())
