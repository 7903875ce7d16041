"""Write docs/cli.md from the CLI's own --help texts: python docs/make_cli_md.py"""

from pathlib import Path

from harness.cli import cli_reference

if __name__ == "__main__":
    out = Path(__file__).with_name("cli.md")
    out.write_text(cli_reference(), encoding="utf-8")
    print(f"wrote {out}")
