"""One module per command group; each registers its subcommands with argparse."""
