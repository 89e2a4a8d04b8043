"""Figure helpers for the book (each chapter's figures come from here so tests can call them)."""
