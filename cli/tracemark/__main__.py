from tracemark.main import entry

entry()
