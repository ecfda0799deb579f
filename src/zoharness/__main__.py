from zoharness.cli import main

raise SystemExit(main())
