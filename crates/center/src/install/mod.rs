//! install.sh and agent download. (Being written.)
