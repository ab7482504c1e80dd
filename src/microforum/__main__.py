from microforum.cli import main

raise SystemExit(main())
