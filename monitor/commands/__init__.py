"""One module per ``monitor`` subcommand: ``add_parser(sub)`` and ``run(args)``."""
