// libFuzzer target: the model-file reader (deploy::loadModel, what tern-eval --model and
// tern-bench-infer call), then what tern-eval does with a model it loaded: its cost, and the
// deployed outputs of one image in the model's input form.
#include "fuzz_util.hpp"
#include "tern/deploy/model_file.hpp"

#include <vector>

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = fuzz::writeFile("model.h5", data, size);
    fuzz::clean([&] {
        deploy::TernaryModel m = deploy::loadModel(path);
        (void)m.cost();
        Index values = 1;
        for (Index d : m.input()) values *= d;
        // One image of a model that loaded: larger inputs (a valid file may declare them)
        // would only measure oneDNN's speed, not the reader.
        if (values <= 0 || values > (1 << 16)) return;
        io::Dataset one;
        one.count = 1;
        one.channels = m.input()[0];
        one.height = m.input()[1];
        one.width = m.input()[2];
        one.images.assign(static_cast<std::size_t>(values), 0.5f);
        one.labels.assign(1, 0);
        m.prepareInput(one);
        std::vector<float> out(static_cast<std::size_t>(m.classes()));
        m.logits(one.images.data(), 1, out.data());
    });
    return 0;
}
