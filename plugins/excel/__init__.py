"""Excel plugin: import of client lists (xlsx, xls, ods, csv) and export of clients and their timeline."""
