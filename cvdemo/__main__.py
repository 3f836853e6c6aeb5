from cvdemo.cli import main

raise SystemExit(main())
