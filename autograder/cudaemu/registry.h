// registry.h -- how the generated launch thunks (see __init__.py) meet runtime.cpp.
//
// Each kernel gets a thunk `void thunk(void** args)` that unpacks its arguments and calls it;
// a static Registrar adds the thunk to the runtime's table under the kernel's name.
#pragma once

typedef void (*KernelThunk)(void** args);

void dlkit_emu_register(const char* name, KernelThunk thunk);

struct Registrar {
    Registrar(const char* name, KernelThunk thunk) { dlkit_emu_register(name, thunk); }
};

// A pointer argument that converts to whatever pointer type the kernel declares.
struct AnyPtr {
    void* p;
    template <typename T>
    operator T*() const { return static_cast<T*>(p); }
};
