"""Evaluation under the declared protocol (DESIGN.md §5): sets (`datasets`), one run (`runner`), tables (`table`)."""
