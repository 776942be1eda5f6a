module oci-cache/bindings/go

go 1.21
