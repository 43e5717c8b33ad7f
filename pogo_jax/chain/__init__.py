"""The chain: the signed log and its rules, the node core, ledger, blob store, beacon, HTTP node and client."""
