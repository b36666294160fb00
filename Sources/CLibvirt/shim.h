// libvirt's C API for CoffreLibvirt: the core API, the QEMU-specific one (guest agent
// pass-through: virDomainQemuAgentCommand) and the error API.
#ifndef COFFRE_CLIBVIRT_SHIM_H
#define COFFRE_CLIBVIRT_SHIM_H

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#endif
