"""The documents API: upload files into a collection, list and delete documents."""
