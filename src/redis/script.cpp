#include <corvo/redis/script.hpp>

#include <openssl/evp.h>

#include <stdexcept>

namespace corvo::redis {
namespace {

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("redis::script: SHA1 failed");
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0x0f];
  }
  return out;
}

}  // namespace

script::script(std::string source) : source_(std::move(source)), sha1_(sha1_hex(source_)) {}

void script::push_to(request& req, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args) const {
  req.push("EVALSHA", sha1_, keys.size(), keys, args);
}

void script::push_load_to(request& req) const { req.push("SCRIPT", "LOAD", source_); }

void script::push_eval_to(request& req, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args) const {
  req.push("EVAL", source_, keys.size(), keys, args);
}

void script::loaded_sha1_matches(const result<std::string>& loaded) const {
  if (!loaded.has_value()) {
    throw boost::system::system_error(loaded.error().code,
                                      "redis::script: SCRIPT LOAD failed: " + loaded.error().message);
  }
  if (*loaded != sha1_) {
    throw std::runtime_error("redis::script: SCRIPT LOAD returned " + *loaded + ", expected " +
                             sha1_);
  }
}

}  // namespace corvo::redis
