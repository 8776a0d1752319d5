from vsync.cli.main import main

raise SystemExit(main())
