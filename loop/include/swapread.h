/* swapread — umbrella header: the whole public API. */
#ifndef SWAPREAD_H
#define SWAPREAD_H

#include "swapread/common.h"
#include "swapread/image.h"
#include "swapread/translate.h"
#include "swapread/regions.h"
#include "swapread/kit.h"
#include "swapread/swap.h"

#endif /* SWAPREAD_H */
