//! The in-process S3-protocol server (s3s + s3s-fs 0.14.x, checking SigV4 signatures and expiry)
//! lands here with the storage module (issue #7); see `../shared/reference/toolchain.md` §5.
