// libvirt's functions that CoffreLibvirt calls, forwarded to libvirt.so.0 (and
// libvirt-qemu.so.0) opened at run time: see CLibvirt.h. When CoffreLibvirt starts calling
// another libvirt function, add it here with the prototype of libvirt's header; the build
// fails at link time until then.
#include "CLibvirt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *core;
static void *qemu;
static char load_error[512];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
    core = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (core == NULL) {
        snprintf(load_error, sizeof load_error, "%s", dlerror());
        return;
    }
    qemu = dlopen("libvirt-qemu.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (qemu == NULL) {
        snprintf(load_error, sizeof load_error, "%s", dlerror());
    }
}

int coffre_libvirt_load(char *error, size_t size) {
    pthread_once(&load_once, load);
    if (core != NULL && qemu != NULL) return 0;
    if (error != NULL && size > 0) snprintf(error, size, "%s", load_error);
    return -1;
}

// The address of `name` in `library`; a call before a successful coffre_libvirt_load is a
// programming error, reported rather than left to crash at address 0.
static void *symbol(void *library, const char *name) {
    void *address = library != NULL ? dlsym(library, name) : NULL;
    if (address == NULL) {
        fprintf(stderr, "coffre: libvirt function %s is not available (%s)\n", name,
                load_error[0] != 0 ? load_error : "coffre_libvirt_load was not called");
        abort();
    }
    return address;
}

// FORWARD(library, return type, name, (parameters), (arguments)): defines `name` with
// libvirt's prototype; the address is looked up on the first call and kept (threads that race
// on the first call store the same address).
#define LOOKUP(library, type, name, parameters)                                        \
    static type (*cached) parameters;                                                  \
    type (*function) parameters = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);          \
    if (function == NULL) {                                                            \
        function = (type (*) parameters) symbol(library, #name);                       \
        __atomic_store_n(&cached, function, __ATOMIC_RELEASE);                         \
    }
#define FORWARD(library, type, name, parameters, arguments)                           \
    type name parameters {                                                             \
        LOOKUP(library, type, name, parameters)                                        \
        return function arguments;                                                     \
    }
#define FORWARD_VOID(library, name, parameters, arguments)                            \
    void name parameters {                                                             \
        LOOKUP(library, void, name, parameters)                                        \
        function arguments;                                                            \
    }

FORWARD(core, int, virInitialize, (void), ())
FORWARD_VOID(core, virSetErrorFunc, (void *userData, virErrorFunc handler), (userData, handler))
FORWARD(core, virErrorPtr, virGetLastError, (void), ())
FORWARD_VOID(core, virResetLastError, (void), ())

FORWARD(core, virConnectPtr, virConnectOpen, (const char *name), (name))
FORWARD(core, int, virConnectClose, (virConnectPtr conn), (conn))
FORWARD(core, char *, virConnectGetHostname, (virConnectPtr conn), (conn))
FORWARD(core, int, virConnectGetLibVersion, (virConnectPtr conn, unsigned long *libVer), (conn, libVer))
FORWARD(core, int, virConnectGetVersion, (virConnectPtr conn, unsigned long *hvVer), (conn, hvVer))
FORWARD(core, int, virConnectIsAlive, (virConnectPtr conn), (conn))
FORWARD(core, int, virConnectListAllDomains, (virConnectPtr conn, virDomainPtr **domains, unsigned int flags),
        (conn, domains, flags))

FORWARD(core, virDomainPtr, virDomainLookupByName, (virConnectPtr conn, const char *name), (conn, name))
FORWARD(core, virDomainPtr, virDomainCreateXML, (virConnectPtr conn, const char *xmlDesc, unsigned int flags),
        (conn, xmlDesc, flags))
FORWARD(core, virDomainPtr, virDomainDefineXML, (virConnectPtr conn, const char *xml), (conn, xml))
FORWARD(core, int, virDomainCreate, (virDomainPtr domain), (domain))
FORWARD(core, int, virDomainDestroy, (virDomainPtr domain), (domain))
FORWARD(core, int, virDomainUndefineFlags, (virDomainPtr domain, unsigned int flags), (domain, flags))
FORWARD(core, int, virDomainFree, (virDomainPtr domain), (domain))
FORWARD(core, const char *, virDomainGetName, (virDomainPtr domain), (domain))
FORWARD(core, int, virDomainGetUUIDString, (virDomainPtr domain, char *buf), (domain, buf))
FORWARD(core, char *, virDomainGetXMLDesc, (virDomainPtr domain, unsigned int flags), (domain, flags))
FORWARD(core, int, virDomainGetState, (virDomainPtr domain, int *state, int *reason, unsigned int flags),
        (domain, state, reason, flags))
FORWARD(core, int, virDomainIsPersistent, (virDomainPtr dom), (dom))
FORWARD(core, int, virDomainFSFreeze,
        (virDomainPtr dom, const char **mountpoints, unsigned int nmountpoints, unsigned int flags),
        (dom, mountpoints, nmountpoints, flags))
FORWARD(core, int, virDomainFSThaw,
        (virDomainPtr dom, const char **mountpoints, unsigned int nmountpoints, unsigned int flags),
        (dom, mountpoints, nmountpoints, flags))
FORWARD(core, int, virDomainGetBlockInfo,
        (virDomainPtr dom, const char *disk, virDomainBlockInfoPtr info, unsigned int flags),
        (dom, disk, info, flags))

FORWARD(core, int, virDomainBackupBegin,
        (virDomainPtr domain, const char *backupXML, const char *checkpointXML, unsigned int flags),
        (domain, backupXML, checkpointXML, flags))
FORWARD(core, int, virDomainAbortJob, (virDomainPtr dom), (dom))
FORWARD(core, int, virDomainGetJobInfo, (virDomainPtr dom, virDomainJobInfoPtr info), (dom, info))
FORWARD(core, int, virDomainListAllCheckpoints,
        (virDomainPtr domain, virDomainCheckpointPtr **checkpoints, unsigned int flags),
        (domain, checkpoints, flags))
FORWARD(core, virDomainCheckpointPtr, virDomainCheckpointLookupByName,
        (virDomainPtr domain, const char *name, unsigned int flags), (domain, name, flags))
FORWARD(core, const char *, virDomainCheckpointGetName, (virDomainCheckpointPtr checkpoint), (checkpoint))
FORWARD(core, int, virDomainCheckpointDelete, (virDomainCheckpointPtr checkpoint, unsigned int flags),
        (checkpoint, flags))
FORWARD(core, int, virDomainCheckpointFree, (virDomainCheckpointPtr checkpoint), (checkpoint))

FORWARD(core, int, virDomainBlockCopy,
        (virDomainPtr dom, const char *disk, const char *destxml, virTypedParameterPtr params, int nparams,
         unsigned int flags),
        (dom, disk, destxml, params, nparams, flags))
FORWARD(core, int, virDomainGetBlockJobInfo,
        (virDomainPtr dom, const char *disk, virDomainBlockJobInfoPtr info, unsigned int flags),
        (dom, disk, info, flags))
FORWARD(core, int, virDomainBlockJobAbort, (virDomainPtr dom, const char *disk, unsigned int flags),
        (dom, disk, flags))
FORWARD(core, int, virTypedParamsAddULLong,
        (virTypedParameterPtr *params, int *nparams, int *maxparams, const char *name, unsigned long long value),
        (params, nparams, maxparams, name, value))
FORWARD_VOID(core, virTypedParamsFree, (virTypedParameterPtr params, int nparams), (params, nparams))

FORWARD(qemu, char *, virDomainQemuAgentCommand,
        (virDomainPtr domain, const char *cmd, int timeout, unsigned int flags), (domain, cmd, timeout, flags))
