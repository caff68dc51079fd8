"""The dcmseal command line (typer + rich); nothing below this package prints."""
