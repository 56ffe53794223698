"""Network access: HTTP fetching with limits and politeness (fetch, policy), the guarded transport under it, and the private-address guard (netguard)."""
