application = "not a callable"
