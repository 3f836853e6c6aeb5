import sys

if sys.argv[1:] == ["worker"]:  # the app's spare training process (cvdemo.spare), not a user command
    from cvdemo.cli.worker import serve

    raise SystemExit(serve())

from cvdemo.cli import main

raise SystemExit(main())
