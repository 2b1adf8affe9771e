"""The apps that sign people in through Gatehouse: clients, codes, tokens, keys, consents."""
