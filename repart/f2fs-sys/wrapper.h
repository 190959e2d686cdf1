/* The two public headers of f2fs-tools 1.15.0 (Debian: libf2fs-dev, libf2fs-format-dev).
 * build.rs passes -I/usr/include/f2fs-tools -DHAVE_LIBSELINUX=1: Debian's archives were built
 * with libselinux, which adds two fields to struct f2fs_configuration (sizeof 0x838). */
#include <f2fs_fs.h>
#include <f2fs_format_utils.h>
