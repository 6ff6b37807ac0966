// Package labtest is the kernel lab's self-test: run in the guest with
//
//	go run ./internal/cmd/ktlslab test ./internal/lab/labtest
//
// it checks what the lab promises to tests: KTLS_LAB=1, the working
// directory with testdata, loopback networking, and the kernel TLS and
// sock_diag modules with the crypto the TLS ULP needs. On the host (no
// KTLS_LAB) its tests skip; they are named TestKernel* like every test
// that needs the kernel.
package labtest
