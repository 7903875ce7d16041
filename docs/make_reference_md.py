"""Write docs/reference.md from the code (harness.reference): python docs/make_reference_md.py"""

from pathlib import Path

from harness.reference import reference_markdown

if __name__ == "__main__":
    out = Path(__file__).with_name("reference.md")
    out.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {out}")
