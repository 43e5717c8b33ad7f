"""The local demo chain (``pogo demo``), its report, and the adversary suite that runs on it."""
