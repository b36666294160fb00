// libvirt's C API for CoffreLibvirt: the core API, the QEMU-specific one (guest agent
// pass-through: virDomainQemuAgentCommand) and the error API, with the declarations of
// libvirt's own headers (libvirt-dev at build time).
//
// coffre does not link libvirt: lazy.c defines each function CoffreLibvirt calls and forwards
// it to libvirt.so.0, opened on first use, so that coffre runs on a host without libvirt (a
// vault of local folders, a package whose libvirt0 is only recommended). Call
// coffre_libvirt_load first: every other function aborts when the library is not there.
#ifndef COFFRE_CLIBVIRT_H
#define COFFRE_CLIBVIRT_H

#include <stddef.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

/// Opens libvirt.so.0 and libvirt-qemu.so.0 once per process. Returns 0, or -1 with dlopen's
/// reason in `error` (at most `size` bytes, NUL-terminated). Thread-safe.
int coffre_libvirt_load(char *error, size_t size);

#endif
