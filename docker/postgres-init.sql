-- OpenFGA keeps its tuples in a database of its own beside tiergate's.
CREATE DATABASE openfga;
