/* swapread — umbrella header: the whole public API (the libuv binding
 * included, so <uv.h> must be on the include path: pkg-config does it). */
#ifndef SWAPREAD_H
#define SWAPREAD_H

#include "swapread/common.h"
#include "swapread/image.h"
#include "swapread/translate.h"
#include "swapread/read.h"
#include "swapread/regions.h"
#include "swapread/kit.h"
#include "swapread/swap.h"
#include "swapread/monitor.h"
#include "swapread/spacemon.h"
#include "swapread/uv.h"

#endif /* SWAPREAD_H */
