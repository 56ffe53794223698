"""Pure pipeline steps, data in and data out: parse feeds, extract pages, canonical URLs, topics, text normalisation, HTML sanitising, OPML."""
