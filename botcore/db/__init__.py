"""The database layer: the models' base and column types, engines and sessions, fault
classification, migrations, the database service, key-value storage, dump and load."""
