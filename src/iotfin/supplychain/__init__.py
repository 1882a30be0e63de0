"""Supply chain: enterprises, sites, chains and their members, trading links, trade documents."""
