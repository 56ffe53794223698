"""Network access: HTTP fetching with limits and politeness (fetch), and the private-address guard (netguard)."""
