//! Routing, normative and byte-exact (PRODUCT.md §1). Completed by issue 2.
