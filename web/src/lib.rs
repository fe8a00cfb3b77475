//! Farmhand's web assets: HTML templates and static files, embedded in the binary at
//! compile time so the daemon is one file to install.
