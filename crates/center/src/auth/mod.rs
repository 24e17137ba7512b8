//! Authentication and authorization. (Being written.)
