// Inception-v3 as torchvision 0.26 builds it (Inception3, transform_input off): BasicConv2d is
// conv (no bias) + BatchNorm (eps 0.001) + ReLU, the Mixed_* blocks keep torchvision's branch
// names. The auxiliary classifier (AuxLogits) is built and kept in the state_dict, as
// torchvision keeps it, but never run: the original Gemel turns aux_logits off after building,
// so training and scoring use the main logits only (zoo.cpp freezes AuxLogits, so it is neither
// trained nor offered for sharing).
#include "nets.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

using Pair = std::array<int64_t, 2>;

class BasicConv2dImpl : public nn::Module {
 public:
  BasicConv2dImpl(int64_t in, int64_t out, Pair kernel, int64_t stride = 1, Pair padding = {0, 0})
      : conv_(register_module("conv", Conv2d(nn::Conv2dOptions(in, out, {kernel[0], kernel[1]})
                                                 .stride(stride)
                                                 .padding({padding[0], padding[1]})
                                                 .bias(false)))),
        bn_(register_module("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(0.001)))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto y = bn_->forward(conv_->forward(x));
    return torch::relu_(y);  // in place, as torchvision
  }

  Conv2d conv_;
  nn::BatchNorm2d bn_;
};
TORCH_MODULE(BasicConv2d);

BasicConv2d square(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return BasicConv2d(in, out, Pair{k, k}, stride, Pair{pad, pad});
}
BasicConv2d row(int64_t in, int64_t out, int64_t k) {  // (1, k), "same" padding
  return BasicConv2d(in, out, Pair{1, k}, 1, Pair{0, k / 2});
}
BasicConv2d column(int64_t in, int64_t out, int64_t k) {  // (k, 1), "same" padding
  return BasicConv2d(in, out, Pair{k, 1}, 1, Pair{k / 2, 0});
}

torch::Tensor avgPool3(const torch::Tensor& x) {
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1));
}
torch::Tensor maxPool3s2(const torch::Tensor& x) {
  return F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2));
}

// A block of parallel branches, each a chain of BasicConv2d registered under its own name.
class BranchesImpl : public nn::Module {
 protected:
  BasicConv2d add(const std::string& name, BasicConv2d conv) {
    return register_module(name, std::move(conv));
  }
};

class InceptionAImpl : public BranchesImpl {
 public:
  InceptionAImpl(int64_t in, int64_t pool_features)
      : b1_(add("branch1x1", square(in, 64, 1))),
        b5_1_(add("branch5x5_1", square(in, 48, 1))),
        b5_2_(add("branch5x5_2", square(48, 64, 5, 1, 2))),
        d1_(add("branch3x3dbl_1", square(in, 64, 1))),
        d2_(add("branch3x3dbl_2", square(64, 96, 3, 1, 1))),
        d3_(add("branch3x3dbl_3", square(96, 96, 3, 1, 1))),
        pool_(add("branch_pool", square(in, pool_features, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b1_(x), b5_2_(b5_1_(x)), d3_(d2_(d1_(x))), pool_(avgPool3(x))}, 1);
  }

 private:
  BasicConv2d b1_, b5_1_, b5_2_, d1_, d2_, d3_, pool_;
};
TORCH_MODULE(InceptionA);

class InceptionBImpl : public BranchesImpl {
 public:
  explicit InceptionBImpl(int64_t in)
      : b3_(add("branch3x3", square(in, 384, 3, 2))),
        d1_(add("branch3x3dbl_1", square(in, 64, 1))),
        d2_(add("branch3x3dbl_2", square(64, 96, 3, 1, 1))),
        d3_(add("branch3x3dbl_3", square(96, 96, 3, 2))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b3_(x), d3_(d2_(d1_(x))), maxPool3s2(x)}, 1);
  }

 private:
  BasicConv2d b3_, d1_, d2_, d3_;
};
TORCH_MODULE(InceptionB);

class InceptionCImpl : public BranchesImpl {
 public:
  InceptionCImpl(int64_t in, int64_t c7)
      : b1_(add("branch1x1", square(in, 192, 1))),
        s1_(add("branch7x7_1", square(in, c7, 1))),
        s2_(add("branch7x7_2", row(c7, c7, 7))),
        s3_(add("branch7x7_3", column(c7, 192, 7))),
        d1_(add("branch7x7dbl_1", square(in, c7, 1))),
        d2_(add("branch7x7dbl_2", column(c7, c7, 7))),
        d3_(add("branch7x7dbl_3", row(c7, c7, 7))),
        d4_(add("branch7x7dbl_4", column(c7, c7, 7))),
        d5_(add("branch7x7dbl_5", row(c7, 192, 7))),
        pool_(add("branch_pool", square(in, 192, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({b1_(x), s3_(s2_(s1_(x))), d5_(d4_(d3_(d2_(d1_(x))))), pool_(avgPool3(x))},
                      1);
  }

 private:
  BasicConv2d b1_, s1_, s2_, s3_, d1_, d2_, d3_, d4_, d5_, pool_;
};
TORCH_MODULE(InceptionC);

class InceptionDImpl : public BranchesImpl {
 public:
  explicit InceptionDImpl(int64_t in)
      : t1_(add("branch3x3_1", square(in, 192, 1))),
        t2_(add("branch3x3_2", square(192, 320, 3, 2))),
        s1_(add("branch7x7x3_1", square(in, 192, 1))),
        s2_(add("branch7x7x3_2", row(192, 192, 7))),
        s3_(add("branch7x7x3_3", column(192, 192, 7))),
        s4_(add("branch7x7x3_4", square(192, 192, 3, 2))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({t2_(t1_(x)), s4_(s3_(s2_(s1_(x)))), maxPool3s2(x)}, 1);
  }

 private:
  BasicConv2d t1_, t2_, s1_, s2_, s3_, s4_;
};
TORCH_MODULE(InceptionD);

class InceptionEImpl : public BranchesImpl {
 public:
  explicit InceptionEImpl(int64_t in)
      : b1_(add("branch1x1", square(in, 320, 1))),
        t1_(add("branch3x3_1", square(in, 384, 1))),
        t2a_(add("branch3x3_2a", row(384, 384, 3))),
        t2b_(add("branch3x3_2b", column(384, 384, 3))),
        d1_(add("branch3x3dbl_1", square(in, 448, 1))),
        d2_(add("branch3x3dbl_2", square(448, 384, 3, 1, 1))),
        d3a_(add("branch3x3dbl_3a", row(384, 384, 3))),
        d3b_(add("branch3x3dbl_3b", column(384, 384, 3))),
        pool_(add("branch_pool", square(in, 192, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    const auto t = t1_(x);
    const auto d = d2_(d1_(x));
    return torch::cat({b1_(x), torch::cat({t2a_(t), t2b_(t)}, 1), torch::cat({d3a_(d), d3b_(d)}, 1),
                       pool_(avgPool3(x))},
                      1);
  }

 private:
  BasicConv2d b1_, t1_, t2a_, t2b_, d1_, d2_, d3a_, d3b_, pool_;
};
TORCH_MODULE(InceptionE);

// Built for its weights only (see the top of this file); torchvision runs it on 17x17 maps.
class InceptionAuxImpl : public BranchesImpl {
 public:
  InceptionAuxImpl(int64_t in, int num_classes)
      : conv0_(add("conv0", square(in, 128, 1))),
        conv1_(add("conv1", square(128, 768, 5))),
        fc_(register_module("fc", nn::Linear(768, num_classes))) {}

  BasicConv2d conv0_, conv1_;
  nn::Linear fc_;
};
TORCH_MODULE(InceptionAux);

class Inception3Impl : public NetImpl {
 public:
  explicit Inception3Impl(int num_classes) {
    stem_ = {add("Conv2d_1a_3x3", square(3, 32, 3, 2)), add("Conv2d_2a_3x3", square(32, 32, 3)),
             add("Conv2d_2b_3x3", square(32, 64, 3, 1, 1)), add("Conv2d_3b_1x1", square(64, 80, 1)),
             add("Conv2d_4a_3x3", square(80, 192, 3))};
    const std::pair<const char*, int64_t> mixed_a[] = {
        {"Mixed_5b", 32}, {"Mixed_5c", 64}, {"Mixed_5d", 64}};
    int64_t in = 192;
    for (const auto& [name, pool] : mixed_a) {
      body_->push_back(name, InceptionA(in, pool));
      in = 224 + pool;
    }
    body_->push_back("Mixed_6a", InceptionB(288));
    for (const auto& [name, c7] : {std::pair<const char*, int64_t>{"Mixed_6b", 128},
                                   {"Mixed_6c", 160},
                                   {"Mixed_6d", 160},
                                   {"Mixed_6e", 192}})
      body_->push_back(name, InceptionC(768, c7));
    // Registered in torchvision's order, so that named_parameters() lists the same sequence.
    for (const auto& kv : body_->named_children()) register_module(kv.key(), kv.value());
    aux_ = register_module("AuxLogits", InceptionAux(768, num_classes));
    tail_->push_back("Mixed_7a", InceptionD(768));
    tail_->push_back("Mixed_7b", InceptionE(1280));
    tail_->push_back("Mixed_7c", InceptionE(2048));
    for (const auto& kv : tail_->named_children()) register_module(kv.key(), kv.value());
    dropout_ = register_module("dropout", nn::Dropout(0.5));
    fc_ = register_module("fc", nn::Linear(2048, num_classes));
    initialise();
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = stem_[2](stem_[1](stem_[0](x)));  // [N, 64, (H - 3) / 2 - 2, ...]
    x = maxPool3s2(x);
    x = maxPool3s2(stem_[4](stem_[3](x)));  // [N, 192, ...]: 35x35 at 299 px
    x = body_->forward(x);                  // [N, 768, ...]: 17x17
    x = tail_->forward(x);                  // [N, 2048, ...]: 8x8
    x = torch::adaptive_avg_pool2d(x, {1, 1});
    return fc_->forward(dropout_->forward(x).flatten(1));  // [N, num_classes]
  }

 private:
  BasicConv2d add(const std::string& name, BasicConv2d conv) {
    return register_module(name, std::move(conv));
  }

  // torchvision's init_weights: truncated normal cut at +-2, std 0.1 except AuxLogits.fc's
  // 0.001 (torchvision also sets 0.01 on AuxLogits.conv1, but on the BasicConv2d, which its
  // loop never asks, so that conv gets 0.1). At these deviations the cut is a clamp for form.
  void initialise() {
    for (const auto& kv : named_modules("", false)) {
      const auto& m = kv.value();
      torch::Tensor weight;
      if (auto* c = m->as<nn::Conv2d>()) weight = c->weight;
      if (auto* l = m->as<nn::Linear>()) weight = l->weight;
      if (auto* bn = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      }
      if (!weight.defined()) continue;
      const double std = kv.key() == "AuxLogits.fc" ? 0.001 : 0.1;
      torch::NoGradGuard no_grad;
      weight.normal_(0.0, std).clamp_(-2.0, 2.0);
    }
  }

  std::vector<BasicConv2d> stem_;  // Conv2d_1a, 2a, 2b, 3b, 4a (maxpool1 after 2b)
  nn::Sequential body_;            // Mixed_5b..6e, registered on this module by name
  nn::Sequential tail_;            // Mixed_7a..7c, likewise
  InceptionAux aux_{nullptr};
  nn::Dropout dropout_{nullptr};
  nn::Linear fc_{nullptr};
};

}  // namespace

std::shared_ptr<NetImpl> makeInceptionV3(int num_classes) {
  return std::make_shared<Inception3Impl>(num_classes);
}

}  // namespace gemel::models
